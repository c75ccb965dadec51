#!/usr/bin/env bash
# ./build.sh demo: a whole Pinhole on this machine, on loopback.
#   test camera (GStreamer RTSP, H.264 + AAC) -> pinhole-edge -> wss uplink -> pinhole-relay -> you
#   a demo sensor file -> pinhole-edge -> MQTT over WebSocket -> Mosquitto
#   the relay subscribes to the same Mosquitto and keeps the sensor history (charts at /devices/gw1/sensors)
# Ports can be moved with DEMO_HTTP, DEMO_RTSP, DEMO_EDGE_WEB, DEMO_MQTT_WS, DEMO_WEBRTC. Ctrl+C stops everything.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
ROOT=$PWD
DATA=$ROOT/demo-data
HTTP_PORT=${DEMO_HTTP:-8080}
RTSP_PORT=${DEMO_RTSP:-8554}
EDGE_WEB_PORT=${DEMO_EDGE_WEB:-8081}
MQTT_WS_PORT=${DEMO_MQTT_WS:-9001}
MQTT_TCP_PORT=${DEMO_MQTT_TCP:-1884}
CAMERA_PORT=${DEMO_CAMERA:-8555}
WEBRTC_PORT=${DEMO_WEBRTC:-8443}
TOKEN=demo-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_port() { # port name
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && { exec 3>&- 3<&- 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "demo: $2 did not start on port $1 (see $DATA/$2.log)" >&2
  exit 1
}

rm -rf "$DATA" && mkdir -p "$DATA"

cat > "$DATA/mosquitto.conf" <<CONF
listener $MQTT_TCP_PORT 127.0.0.1
listener $MQTT_WS_PORT 127.0.0.1
protocol websockets
allow_anonymous true
persistence true
persistence_location $DATA/
CONF
mosquitto -c "$DATA/mosquitto.conf" >"$DATA/mosquitto.log" 2>&1 & pids+=($!)
wait_port "$MQTT_WS_PORT" mosquitto

/usr/bin/python3 tests/Pinhole.Testing/peers/rtsp-camera.py --port "$CAMERA_PORT" --path /cam --codec h264 --audio aac \
  --width 1280 --height 720 >"$DATA/camera.log" 2>&1 & pids+=($!)
wait_port "$CAMERA_PORT" camera

cat > "$DATA/relay.json" <<JSON
{
  "http": "http://127.0.0.1:$HTTP_PORT",
  "rtsp": "127.0.0.1:$RTSP_PORT",
  "dataDir": "$DATA/relay",
  "devices": [ { "id": "gw1", "token": "$TOKEN" } ],
  "viewers": [ { "user": "demo", "password": "demo", "role": "admin" } ],
  "metrics": { "public": true },
  "webrtc": { "udp": "127.0.0.1:$WEBRTC_PORT" },
  "telemetry": { "mqtt": "ws://127.0.0.1:$MQTT_WS_PORT/mqtt",
                 "alerts": [ { "device": "*", "sensor": "room_temp", "above": 24, "for": "10s" } ] }
}
JSON
out/relay/pinhole-relay --config "$DATA/relay.json" >"$DATA/relay.log" 2>&1 & pids+=($!)
wait_port "$HTTP_PORT" relay

# A sensor the demo can move: a file holding a number, like a thermal zone (millidegrees).
echo 21500 > "$DATA/temp"
( while sleep 2; do echo $((20000 + RANDOM % 5000)) > "$DATA/temp.new" && mv "$DATA/temp.new" "$DATA/temp"; done ) & pids+=($!)

cat > "$DATA/edge.json" <<JSON
{
  "deviceId": "gw1",
  "token": "$TOKEN",
  "relays": [ "ws://127.0.0.1:$HTTP_PORT/uplink" ],
  "cameras": [ { "name": "cam", "source": "rtsp://127.0.0.1:$CAMERA_PORT/cam" } ],
  "sensors": [
    { "name": "room_temp", "kind": "file", "path": "$DATA/temp", "scale": 0.001, "unit": "°C", "interval": "2s" }
  ],
  "mqtt": { "url": "ws://127.0.0.1:$MQTT_WS_PORT/mqtt", "topicPrefix": "pinhole" },
  "web": { "listen": "http://127.0.0.1:$EDGE_WEB_PORT", "password": "demo" },
  "dataDir": "$DATA/edge"
}
JSON
out/edge/pinhole-edge --config "$DATA/edge.json" >"$DATA/edge.log" 2>&1 & pids+=($!)
wait_port "$EDGE_WEB_PORT" edge

cat <<MSG

Pinhole demo is running (logs in demo-data/). Login: demo / demo (an admin)

  Browser player   http://127.0.0.1:$HTTP_PORT/play/gw1/cam   (WebRTC, MSE if WebRTC cannot connect)
  Sensor charts    http://127.0.0.1:$HTTP_PORT/devices/gw1/sensors   (alert above 24 °C for 10 s)
  Device list      http://127.0.0.1:$HTTP_PORT/
  Fleet (admins)   http://127.0.0.1:$HTTP_PORT/fleet   (devices, remote config, audit log)
  RTSP             rtsp://demo:demo@127.0.0.1:$RTSP_PORT/gw1/cam
                   e.g.  ffplay -rtsp_transport tcp rtsp://demo:demo@127.0.0.1:$RTSP_PORT/gw1/cam
  Edge local page  http://127.0.0.1:$EDGE_WEB_PORT/   (password: demo)
  Telemetry        mosquitto_sub -p $MQTT_TCP_PORT -t 'pinhole/#' -v
  Relay metrics    http://127.0.0.1:$HTTP_PORT/metrics

Press Ctrl+C to stop.
MSG
wait -n "${pids[@]}" || true
echo "demo: a component exited; see demo-data/*.log" >&2
