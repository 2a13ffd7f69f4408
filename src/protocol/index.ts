// Latent streaming protocol v2 (docs/protocol.md): frames, tensors, authentication, host and edge.
export { BodyDigest, bodyDigest, checkDigest, DEFAULT_AUTH_WINDOW_MS, importSecret, NonceCache, sha256, signFrames, type SignOptions, toHex, verifyAuth, verifyAuthFrame, type VerifyOptions } from "./auth.ts";
export { Admission, readJsonObject } from "./admission.ts";
export { crc32 } from "../crc32.ts";
export { EDGE_CUTS, type EdgeCut, type EdgeGeneration, type EdgeResult, runEdgeGeneration } from "./edge.ts";
export { ERROR_STATUS, type ErrorCode, ProtocolError } from "./errors.ts";
export {
  CUTS, type Cut, DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeFrame, type Frame, FRAMES_MEDIA_TYPE, type GenerationSettings,
  PROTOCOL_VERSION, SUPPORTED_VERSIONS,
} from "./frames.ts";
export { errorFrameBytes, errorResponse, hostProtocolHandler, type HostProtocolOptions, MAX_AUTH_FRAME_BYTES } from "./host.ts";
export { checkHello, type ModelIdentity, type ServedModel, unetCutShapes } from "./session.ts";
export { FrameReader, frameStream } from "./stream.ts";
export { decodeTensor, encodeTensor, type WireDtype, type WireTensor } from "./tensor-codec.ts";
export { UpstreamPool, type UpstreamOptions } from "./upstream.ts";
