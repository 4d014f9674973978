"""Training: `ssl-robot train METHOD --bag PATH... --out RUN_DIR`, single process or under torchrun.

config      TrainConfig (with ssl_robot.data.config.DataConfig nested), read from YAML with key.sub=value overrides
loop        train(config, make_batches, out): the loop, resuming from the run directory's latest checkpoint
checkpoint  pickle-free training checkpoints (model, optimizer) with a `latest` link and the last K kept
run_dir     the run directory's layout, the resolved config and the code version of every start
data_stream the MakeDataset seam to ssl_robot.data and the batch stream made of it
cli         add_train_arguments / run_train for the `ssl-robot` command line
No ROS here.
"""
