"""Consent-gated capture of production traffic and feedback as post-training data.

Nothing here knows about routing: the gateway decides which policy applies to a request and hands the
exchange to ``CaptureService.offer``; redaction, storage, retention, feedback and dataset export live here.
"""
