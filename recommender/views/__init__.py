"""One blueprint per feature; :mod:`.common` holds the request helpers they share."""
