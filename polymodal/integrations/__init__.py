"""Integrations with other frameworks (LangChain first); each module imports its framework lazily."""
