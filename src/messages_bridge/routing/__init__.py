"""Several upstreams from one file: capability profiles, routes, failover, circuit breakers and key pools."""
