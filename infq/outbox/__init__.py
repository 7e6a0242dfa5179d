"""The outbox: telling the world a job is final — completion events on
``infq.results`` (:mod:`.events`), webhook deliveries and batch completion
(:mod:`.announce`). A final job stays in the outbox (``notified_at`` unset) until a
broker acknowledged its event; the scheduler's sweeper announces what was left."""
