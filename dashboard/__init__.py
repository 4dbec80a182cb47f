"""The Dash dashboard: search demands, read ranked patents, compare their scores.

The dashboard talks to the search API over HTTP only (``api_client``). Callback
logic lives in plain functions (``search_form``, ``results``, ``charts``) so it can
be tested without a browser; ``callbacks`` only wires them to components.
"""
