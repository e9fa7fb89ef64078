export { createFakeDevice, createFakeDevicePair } from './fake-device.js';
export type { FakeDevice, FakeDeviceOptions } from './fake-device.js';
export { describeDeviceCompliance } from './device-compliance.js';
export type { DeviceHarness } from './device-compliance.js';
export { icmpEcho, parseIcmpEcho, ipv4Packet, ipv6Packet, v6Bytes, icmp4Error, tcp4, ipv6WithHeaders, icmp6, vnetHeader, tcpSuperPacket, tcpFrame } from './packets.js';
export { createMemoryTransportPair } from './memory-transport.js';
export { receiveBuffers } from './sockets.js';
