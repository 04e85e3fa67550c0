"""The publishing actors' time limit leaves room for the slowest upload the policy plans for."""

from __future__ import annotations

from datetime import timedelta

from dramatiq.brokers.stub import StubBroker

from application.publishing import PublishingPolicy, PublishingService
from workers.actors import register_actors

X_LARGEST_VIDEO = 512 * 1024 * 1024


def no_service() -> PublishingService:
    raise AssertionError("nothing is published here")


def test_publishing_actors_outlast_the_largest_upload_at_the_planned_rate() -> None:
    policy = PublishingPolicy()
    transfer = timedelta(seconds=X_LARGEST_VIDEO / policy.upload_rate_floor)
    longest = policy.lease + transfer + policy.media_processing

    actors = register_actors(StubBroker(), no_service)

    for actor in (actors.start_publishing, actors.deliver):
        assert actor.options["time_limit"] > longest.total_seconds() * 1000
    assert actors.keep_account.options["time_limit"] < actors.deliver.options["time_limit"]
