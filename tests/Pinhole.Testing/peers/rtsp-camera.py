#!/usr/bin/python3
"""A live RTSP test camera for Pinhole's tests: GStreamer's RTSP server with a moving test pattern.

Run with Debian's /usr/bin/python3 (it has python3-gi). Prints one line `READY port=N` on stdout
once listening, then serves until killed.

  rtsp-camera.py --port 0 --path /cam --codec h264 --audio aac --user u --password p
  rtsp-camera.py --protocols udp --slices 2 --bframes 2   (a UDP-only camera, 2 slices a picture, B-frames)
  rtsp-camera.py --slices 2 --mark-slices                 (the marker bit after every slice, like live555ProxyServer)
"""
import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def video_branch(a):
    caps = f"video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1"
    src = f"videotestsrc is-live=true pattern={a.pattern} ! {caps} ! videoconvert"
    gop = a.gop or a.fps
    # sliced-threads=false: with zerolatency x264 splits frames into slices and ffmpeg then reports
    # concealed macroblocks on the first I frame, which would hide real errors from "no decoder
    # errors" assertions. One slice per frame keeps the reference stream clean.
    if a.codec == "h264":
        # --slices N asks x264 for N slices per picture (as encoders in slice or low-latency mode
        # do); --bframes N for B-frames, which need the main profile and no zerolatency tune
        # (zerolatency turns B-frames off).
        tune = "" if a.bframes else "tune=zerolatency "
        opts = f"slices={a.slices}" if a.slices > 1 else ""
        profile = "main" if a.bframes else "constrained-baseline"
        enc = (f"x264enc {tune}speed-preset=ultrafast bitrate={a.bitrate} key-int-max={gop} "
               f"bframes={a.bframes} sliced-threads=false option-string=\"{opts}\" ! video/x-h264,profile={profile}")
        pay = "rtph264pay name=pay0 pt=96 config-interval=-1"
        if a.mark_slices:
            # Like live555ProxyServer: the RTP marker after every slice. h264parse hands the
            # payloader one NAL unit a buffer; mark_every_slice flags each slice as an access
            # unit's last NAL unit, which rtph264pay ends with the marker bit.
            pay = "h264parse ! video/x-h264,alignment=nal ! " + pay
    elif a.codec == "h265":
        enc = (f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} key-int-max={gop} "
               f"! video/x-h265,profile=main")
        pay = "rtph265pay name=pay0 pt=96 config-interval=-1"
    else:
        raise SystemExit(f"unknown codec {a.codec}")
    return f"{src} ! {enc} ! {pay}"


def mark_every_slice(factory, media):
    """Sets GST_BUFFER_FLAG_MARKER on every slice NAL unit (types 1..5) entering pay0."""
    def on_buffer(pad, info):
        buf = info.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        if ok:
            data = bytes(m.data[:8])
            buf.unmap(m)
            i = data.find(b"\x00\x00\x01")
            if i >= 0 and i + 3 < len(data) and 1 <= (data[i + 3] & 0x1F) <= 5:
                buf.set_flags(Gst.BufferFlags.MARKER)
            else:
                buf.unset_flags(Gst.BufferFlags.MARKER)
        return Gst.PadProbeReturn.OK

    pay = media.get_element().get_by_name("pay0")
    pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_buffer)


def audio_branch(a, name):
    src = "audiotestsrc is-live=true wave=sine freq=440 volume=0.3"
    if a.audio == "aac":
        return (f"{src} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 "
                f"! voaacenc bitrate=64000 ! rtpmp4gpay name={name} pt=97")
    if a.audio == "pcma":
        return f"{src} ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name={name} pt=8"
    if a.audio == "pcmu":
        return f"{src} ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name={name} pt=0"
    raise SystemExit(f"unknown audio {a.audio}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0, help="TCP port, 0 picks a free one")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--path", default="/cam")
    p.add_argument("--codec", choices=["h264", "h265", "none"], default="h264")
    p.add_argument("--audio", choices=["none", "aac", "pcma", "pcmu"], default="none")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--gop", type=int, default=0, help="keyframe interval in frames (default: one per second)")
    p.add_argument("--bitrate", type=int, default=800, help="video kbit/s")
    p.add_argument("--pattern", default="ball")
    p.add_argument("--protocols", choices=["any", "tcp", "udp"], default="any",
                   help="lower transports offered: udp makes a camera that answers 461 to TCP-interleaved SETUP")
    p.add_argument("--slices", type=int, default=1, help="H.264 slices per picture")
    p.add_argument("--bframes", type=int, default=0, help="H.264 B-frames between references")
    p.add_argument("--mark-slices", action="store_true",
                   help="H.264: set the RTP marker after every NAL unit (slice), as live555ProxyServer does")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    Gst.init(None)
    branches = []
    if a.codec != "none":
        branches.append(video_branch(a))
    if a.audio != "none":
        branches.append(audio_branch(a, f"pay{len(branches)}"))
    if not branches:
        raise SystemExit("nothing to serve: --codec none and --audio none")
    launch = "( " + " ".join(branches) + " )"

    server = GstRtspServer.RTSPServer()
    server.set_address(a.address)
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if a.mark_slices and a.codec == "h264":
        factory.connect("media-configure", mark_every_slice)
    if a.protocols == "udp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    elif a.protocols == "tcp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)

    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(a.user, a.password or "", token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("viewer", "media.factory.access", True)
        perms.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(perms)

    server.get_mount_points().add_factory(a.path, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on {a.address}:{a.port}")

    loop = GLib.MainLoop()
    medias = []
    factory.connect("media-configure", lambda _factory, media: medias.append(media))

    def stop():
        # A graceful stop ends the stream first, as a camera that shuts a stream down does: EOS
        # makes rtpbin send an RTCP BYE ("End Of Stream", RFC 3550 sec. 6.6) to every client;
        # a second later the process exits. (Quitting the loop alone kept serving while a client
        # was connected, and sent no BYE.)
        for media in medias:
            media.get_element().send_event(Gst.Event.new_eos())
        GLib.timeout_add(1000 if medias else 0, loop.quit)
        return GLib.SOURCE_REMOVE

    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, stop)
    print(f"READY port={server.get_bound_port()}", flush=True)
    loop.run()
    sys.stdout.flush()
    os._exit(0)  # GStreamer's server threads kept the interpreter alive while a client was connected


if __name__ == "__main__":
    sys.exit(main())
