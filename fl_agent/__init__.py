"""FairFL agents: chain and storage clients, training and aggregation."""
