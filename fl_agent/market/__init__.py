"""The marketplace side of FairFL: sealing model weights and delivering keys to buyers."""
