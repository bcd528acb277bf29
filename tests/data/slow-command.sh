#!/bin/sh
# Says it started, then takes longer than any test waits for it: a command the entrypoint has
# to stop.
echo "slow-command.sh started"
sleep 60
echo "slow-command.sh finished"
