"""Live inference, without ROS: the one model holder (model_holder) and what each model node computes with it
(embedder for the TCN family, goals for the VAEs, grasp2vec for Grasp2Vec), plus the demo embedding and the frame
buffers the nodes keep. Nodes import from here; nothing here imports a node."""
