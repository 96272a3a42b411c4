"""On-device fine-tuning: update specs, compile-time autodiff with sparse backprop, optimizers, the Trainer.

Only sparsec.train.trainer is needed on a device (numpy only); the rest runs at compile time.
"""
