"""Readers for each source of new papers: arXiv, Hugging Face and files."""
