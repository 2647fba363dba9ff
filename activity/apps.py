from django.apps import AppConfig


class ActivityConfig(AppConfig):
    name = "activity"
    verbose_name = "Activity log"

    def ready(self):
        from celery.signals import task_postrun, task_prerun

        from activity import tracking

        # A change a worker makes carries the task's name, as a request's carries its user and path.
        task_prerun.connect(tracking.enter_task_context, weak=False)
        task_postrun.connect(tracking.exit_task_context, weak=False)
