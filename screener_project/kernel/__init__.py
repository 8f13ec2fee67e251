"""What every app may import: the Redis client and its keys, clocks, timeframes, the channel-layer contract, the
stage timer and compiled numeric kernels. Nothing here imports an app."""
