"""Codecs: bytes on a wire <-> `widgetspy.message.Message`. No I/O."""
