#!/usr/bin/env bash
echo "demo: not wired yet (see README: what works today)" >&2
exit 1
