"""Built-in encoders. Each returns an ordered ``dict`` of feature maps, shallow to deep."""
