"""What nodes report about their own health, pure (no rclpy): per-input counts and silence (input_monitor), problems
counted per kind (problem_log), and which reporters went quiet (liveness, for the diagnostics monitor)."""
