#!/usr/bin/env bash
# A scripted `polymodal chat` session: the same lines you would type interactively.
# Run from the repository root: bash examples/chat_session.sh
set -euo pipefail
polymodal chat --profile offline <<'SESSION'
/attach examples/media/voice-note.wav
What does this voice note say?
/attach examples/media/sign.png
What does the sign say?
/quit
SESSION
