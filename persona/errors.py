"""The one exception type users see.

Every error a user can cause (bad file, no person, corrupt package, missing weights) raises
`PersonaError` with a message that says what went wrong and what to do. The CLI prints it as
one line and exits with code 2; the app shows it as a `gr.Error`. Internal invariants use
`assert`, never this type.
"""


class PersonaError(Exception):
    """A user-facing error whose message says what to do."""
