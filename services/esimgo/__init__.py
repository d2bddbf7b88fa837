"""eSIM Go reseller API v2.4: typed client, models and errors."""
