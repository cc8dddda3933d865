"""raynetsim: a loopback simulator of Raynet CRM's REST API v2 for the tests and the demo.

It speaks the part of the API the Raynet backend uses, with Raynet's semantics (PUT creates,
POST updates, filters with operators in brackets, the daily request budget, webhooks), and a
control API under /_control/ lets tests act from outside. `openapi.json` beside this file is
Raynet's published specification, which the tests validate all traffic against.
"""
