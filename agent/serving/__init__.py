"""The inference server's parts: app (endpoints), config (limits), launch (uvicorn), security (token,
slow clients), codec (msgpack wire format), schemas (what is accepted), runtime and batching (the
model thread), chunks (merging overlapping chunks on the client), media (PNG, WAV)."""
