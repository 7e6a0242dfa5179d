"""Tenants: who owns jobs, their API keys and webhook secrets (:mod:`.accounts`), the
rules on names and limits (:mod:`.policy`, pure), and the limits enforced at both edges:
the REST API's quotas and rate buckets (:mod:`.quotas`, :mod:`.ratelimit`) and the
dispatcher's max queued jobs per round (:mod:`.max_queued`, pure)."""
