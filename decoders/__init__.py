"""Built-in decoders: upsampling paths from encoder features to a full-resolution map that dense heads share."""
