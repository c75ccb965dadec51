// MQTT.js peer for `dotnet run --project bench/Pinhole.Benchmarks -c Release -- mqtt`.
// Usage: node publish.js URL QOS COUNT PAYLOAD_BYTES TOPIC
// Publishes COUNT messages as fast as MQTT.js accepts them and prints one JSON line:
// {"client":"mqtt.js","qos":Q,"count":N,"seconds":S}. The clock stops when the broker has everything:
// for QoS 1 when the last PUBACK arrived, for QoS 0 when the PUBACK of a final QoS 1 message arrived
// (the broker handles a connection's packets in order).
'use strict';
const mqtt = require('mqtt');

const [url, qosArg, countArg, sizeArg, topic] = process.argv.slice(2);
const qos = Number(qosArg);
const count = Number(countArg);
const payload = Buffer.alloc(Number(sizeArg), 0x61);

const client = mqtt.connect(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0, clientId: 'mqttjs-bench-' + process.pid });
client.on('error', (e) => { console.error(e.message); process.exit(1); });
client.on('connect', () => {
  const start = process.hrtime.bigint();
  const done = () => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(JSON.stringify({ client: 'mqtt.js', version: require('mqtt/package.json').version, qos, count, seconds }));
    client.end(true, () => process.exit(0));
  };
  if (qos === 0) {
    for (let i = 0; i < count; i++) client.publish(topic, payload, { qos: 0 });
    client.publish(topic, payload, { qos: 1 }, (err) => { if (err) throw err; done(); });
    return;
  }
  let acked = 0;
  for (let i = 0; i < count; i++) {
    client.publish(topic, payload, { qos }, (err) => {
      if (err) throw err;
      if (++acked === count) done();
    });
  }
});
