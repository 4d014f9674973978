"""The application commands of `ssl-robot` (ssl_robot.cli dispatches to them): collect (record sim episodes to a
bag), explore (random-action task episodes for VAE training) and main_job (the sim graph reaching imagined goals)."""
