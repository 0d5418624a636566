"""The annotation app: projects, images, captions, detections, tasks with leases, corrections, jobs."""
