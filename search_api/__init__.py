"""Matching service: the Faiss vector store, ranking functions and the aiohttp API."""
