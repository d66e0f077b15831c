"""The mail queue in a test: run its jobs in this process, release the delayed ones, or lose them all."""

from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from meander_site.core.redis_client import redis_connection
from meander_site.mail import dispatch
from meander_site.mail.dispatch import mail_queue


def run_jobs(app) -> int:
    """Run every queued job in this process as the worker does (SimpleWorker.execute_job: retries,
    failure registry and all), without the worker's start-up and shutdown; return how many ran."""
    with app.app_context():
        connection = redis_connection()
        queue = mail_queue(connection)
        worker = SimpleWorker([queue], connection=connection)
        count = 0
        while (job := queue.dequeue_any([queue], timeout=None, connection=connection)) is not None:
            job = job[0]
            worker.execute_job(job, queue)
            count += 1
        return count


def release_scheduled_jobs(app) -> int:
    """Do what RQ's scheduler does once a job's time has come, without waiting the minute out."""
    with app.app_context():
        connection = redis_connection()
        queue = mail_queue(connection)
        registry = ScheduledJobRegistry(queue=queue)
        job_ids = registry.get_job_ids()
        for job in Job.fetch_many(job_ids, connection=connection):
            if job is not None:
                queue._enqueue_job(job)
        for job_id in job_ids:
            registry.remove(job_id)
        dispatch.forget_waiting_jobs()  # by the time a delayed job runs, the flag of its time slot has expired
        return len(job_ids)


def lose_queued_jobs() -> None:
    """What losing Redis does to the mail: the queued jobs are gone, and with them the flag that said one was
    waiting (in an app context)."""
    mail_queue().empty()
    dispatch.forget_waiting_jobs()
