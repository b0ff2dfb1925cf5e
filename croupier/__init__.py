"""The croupier: turns decisions into protected brackets and keeps them safe."""
