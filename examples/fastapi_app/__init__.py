"""A FastAPI application that queues async tasks with the async client: docs/asyncio.md."""
