"""Models: the versioned registry and the encoders (static, transformer, distilled)."""
