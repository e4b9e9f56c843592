"""One table of one release: plan (lock, resume), read, COPY under the audit contexts, swap."""
