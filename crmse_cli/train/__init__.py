"""Training: losses, frame sets, optimiser helpers, MSE pretraining and CRMSE post-training."""
