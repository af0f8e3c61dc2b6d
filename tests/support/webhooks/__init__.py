"""Python mirrors of Knative's admission webhooks (validation and defaulting), read from source."""
