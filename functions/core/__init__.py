"""knative-thumbnails core: configuration, jobs, storage, events, imaging, web helpers."""
