"""The monitoring dashboard: a Starlette app that reads only the store (``flowlib dashboard``)."""
