export { createFakeDevice, createFakeDevicePair } from './fake-device.js';
export type { FakeDevice, FakeDeviceOptions } from './fake-device.js';
export { describeDeviceCompliance } from './device-compliance.js';
export type { DeviceHarness } from './device-compliance.js';
export { icmpEcho, parseIcmpEcho, ipv4Packet, ipv6Packet } from './packets.js';
export { createMemoryTransportPair } from './memory-transport.js';
