"""The click commands of typedtiger: connection and config options, ``worker`` and the admin
commands. Two front ends register them: the ``typedtiger`` program (``typedtiger.cli``) and the
Flask integration."""
