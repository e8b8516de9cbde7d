"""Audio front-end: wav I/O and resampling (`styletts2.audio.io`, numpy only) and the upstream-exact
normalised log-mel spectrogram (`styletts2.audio.mel`, torch).

Nothing is imported here, so `styletts2.audio.io` stays usable where torch is absent.
"""
