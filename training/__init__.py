"""Training, evaluation and prediction: the paper's protocol and metrics, and inference on users' data."""
