"""Loopback simulators of the social platforms Kairos publishes to.

Nothing here imports Kairos code: the simulators are stand-ins for the real platforms.
"""
