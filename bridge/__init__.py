"""bridge: verified webhooks in, a durable SQLite outbox, Omnisend and Ometria out."""

__version__ = "0.1.0"
