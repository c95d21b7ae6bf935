"""A real RTSP camera for the tests: GStreamer's RTSP server streaming videotestsrc as RTP/JPEG
on 127.0.0.1:PORT/cam. Run as its own process so a test can kill it like a camera that dies.

    python rtsp_server.py PORT
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( videotestsrc pattern=ball is-live=true ! "
                       "video/x-raw,width=160,height=120,framerate=20/1,format=I420 ! "
                       "jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
