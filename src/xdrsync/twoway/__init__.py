"""Two-way sync: workspace edits as intent (outbox), merged three ways and pushed to Defender."""
