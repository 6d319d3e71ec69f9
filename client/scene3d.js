// Browser mode (?render=client): the page draws the two avatars itself with three.js, from the poses
// the server sends on the "poses" data channel (layout: engine/webrtc/pose_packet.py), in step with
// the speaker's audio that plays as before.
//
// - The avatar is the server's own, as glTF (/avatar.glb: renderer/gltf.py): a skinned mesh whose
//   joints are the body model's, in its order, and the face rig as ARKit-named morph targets.
// - The scene is the server's (its answer's `scene`: renderer/scene.py): where each person sits,
//   the camera, its field of view, the picture's size. The mouse orbits, pans and zooms the camera.
// - Timing: each pose carries the audio sample at the end of its frame's audio. At each animation
//   frame the page asks which audio sample is being heard now (the audio receiver's last played RTP
//   timestamp and when it played, minus the sender's RTP origin from the telemetry) and draws the
//   pose of that instant, interpolated between the two poses around it (slerp per joint).
'use strict';

import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { clone as cloneSkinned } from 'three/addons/utils/SkeletonUtils.js';

export const AUDIO_RATE = 48000;
const HEADER_BYTES = 20;
const FLOATS_PER_PERSON = 216;
const PEOPLE = 2;
export const PACKET_BYTES = HEADER_BYTES + PEOPLE * FLOATS_PER_PERSON * 4;
const AT = { transl: 0, orient: 3, body: 6, leftHand: 69, rightHand: 114, head: 159, face: 162 };
const HEAD_JOINT = 15;
const SMPLX_JAW_OPEN_RAD = 0.45; // as renderer/avatar.py: jawOpen drives an SMPL-X jaw
const KEPT_POSES = 120;          // about 4 s of poses to interpolate in
const DRAWN_WINDOW_MS = 2000;
const LOG_WINDOW_MS = 10000;      // drawn frames kept for the panel's medians
const EXPORT_LIMIT = 54000;       // pose records kept between two take() (30 min)
// renderer/offscreen.py's clear colour and divider, written to the picture as they are (as GL does)
const BACKGROUND = new THREE.Color().setRGB(0.80, 0.83, 0.86, THREE.LinearSRGBColorSpace);
const DIVIDER = new THREE.Color().setRGB(0.62, 0.66, 0.70, THREE.LinearSRGBColorSpace);

// renderer/shaders/flat.vert's lighting, per vertex after three.js's skinning: a warm key light, a
// cool fill, a rim from behind, sky and ground ambient, then ~gamma 2.0, the server's look exactly
// (the colours in /avatar.glb are its linear albedo); and in software WebGL far cheaper than a lit
// per-pixel material. The picture is written without three.js's own output encoding.
const FLAT_LIGHT_GLSL = `
const vec3 DY_KEY_DIR = vec3(-1.0, 1.3, 1.6);
const vec3 DY_KEY_COL = vec3(0.78, 0.74, 0.68);
const vec3 DY_FILL_DIR = vec3(1.4, 0.4, 1.2);
const vec3 DY_FILL_COL = vec3(0.26, 0.29, 0.34);
const vec3 DY_BACK_DIR = vec3(0.3, 1.2, -1.6);
const vec3 DY_BACK_COL = vec3(0.45, 0.45, 0.45);
const vec3 DY_AMBIENT_SKY = vec3(0.30, 0.31, 0.34);
const vec3 DY_AMBIENT_GROUND = vec3(0.17, 0.16, 0.15);
float dyWrapped(vec3 n, vec3 dir) { return max((dot(n, normalize(dir)) + 0.3) / 1.3, 0.0); }
`;
const FLAT_LIGHT_APPLY = `
vec3 dyN = normalize(mat3(modelMatrix) * objectNormal);
vec3 dyWorld = (modelMatrix * vec4(transformed, 1.0)).xyz;
float dySky = dyN.y * 0.5 + 0.5;
vec3 dyLight = dyWrapped(dyN, DY_KEY_DIR) * DY_KEY_COL + dyWrapped(dyN, DY_FILL_DIR) * DY_FILL_COL
  + dyWrapped(dyN, DY_BACK_DIR) * DY_BACK_COL + DY_AMBIENT_SKY * dySky + DY_AMBIENT_GROUND * (1.0 - dySky);
float dyRim = pow(clamp(1.0 - dot(dyN, normalize(cameraPosition - dyWorld)), 0.0, 1.0), 3.0) * 0.12;
vColor.rgb = sqrt(clamp(vColor.rgb * dyLight + dyRim, 0.0, 1.0));
`;

function flatLitMaterial() {
  const material = new THREE.MeshBasicMaterial({ vertexColors: true });
  material.onBeforeCompile = (shader) => {
    shader.vertexShader = shader.vertexShader
      .replace('#include <common>', `#include <common>\n${FLAT_LIGHT_GLSL}`)
      .replace('#include <fog_vertex>', `#include <fog_vertex>\n${FLAT_LIGHT_APPLY}`);
  };
  return material;
}
const mod32 = (x) => ((x % 4294967296) + 4294967296) % 4294967296;

// One packet -> {index, audioSample, captured, framing, modelListener, people: [Float32Array x 2]}.
export function parsePosePacket(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength !== PACKET_BYTES) {
    throw new Error(`pose packet of ${buffer && buffer.byteLength} bytes, expected ${PACKET_BYTES}`);
  }
  const v = new DataView(buffer);
  const version = v.getUint8(0), people = v.getUint8(1), framing = v.getUint8(2);
  if (version !== 1 || people !== PEOPLE || framing > 1) throw new Error(`pose packet version ${version} not understood`);
  const floats = new Float32Array(buffer, HEADER_BYTES, PEOPLE * FLOATS_PER_PERSON);
  return {
    index: v.getUint32(4, true),
    audioSample: v.getUint32(8, true),
    captured: v.getFloat64(12, true),
    framing: framing === 1 ? 'faces' : 'body',
    modelListener: (v.getUint8(3) & 1) === 1,
    people: [0, 1].map((k) => floats.subarray(k * FLOATS_PER_PERSON, (k + 1) * FLOATS_PER_PERSON)),
  };
}

const tmpAxis = new THREE.Vector3();
function quatFromAxisAngle(out, x, y, z) {
  const angle = Math.hypot(x, y, z);
  if (angle < 1e-8) return out.set(0, 0, 0, 1);
  return out.setFromAxisAngle(tmpAxis.set(x / angle, y / angle, z / angle), angle);
}

// One person's pose as the skeleton takes it: a quaternion per joint, the root's translation and
// the face weights (ARKit order). The head rotation is composed onto joint 15 as the server does.
function personPose(floats, joints) {
  const quats = Array.from({ length: joints }, () => new THREE.Quaternion());
  const rot = (j, at) => quatFromAxisAngle(quats[j], floats[at], floats[at + 1], floats[at + 2]);
  rot(0, AT.orient);
  for (let j = 1; j <= 21; j++) rot(j, AT.body + (j - 1) * 3);
  const hands = joints === 55 ? 25 : 22; // SMPL-X has jaw and eyes before the hands
  for (let k = 0; k < 15; k++) {
    rot(hands + k, AT.leftHand + k * 3);
    rot(hands + 15 + k, AT.rightHand + k * 3);
  }
  const h = AT.head;
  if (floats[h] || floats[h + 1] || floats[h + 2]) {
    const extra = quatFromAxisAngle(new THREE.Quaternion(), floats[h], floats[h + 1], floats[h + 2]);
    quats[HEAD_JOINT].premultiply(extra);
  }
  const face = floats.slice(AT.face, AT.face + 52);
  if (joints === 55) quatFromAxisAngle(quats[22], SMPLX_JAW_OPEN_RAD * Math.min(Math.max(face[17], 0), 1), 0, 0);
  return { quats, transl: new THREE.Vector3(floats[0], floats[1], floats[2]), face };
}

function blendPose(a, b, t, out) {
  for (let j = 0; j < out.quats.length; j++) out.quats[j].slerpQuaternions(a.quats[j], b.quats[j], t);
  out.transl.lerpVectors(a.transl, b.transl, t);
  for (let k = 0; k < out.face.length; k++) out.face[k] = a.face[k] + (b.face[k] - a.face[k]) * t;
  return out;
}

// The face rig's morph targets, moved to the CPU: three.js's vertex shader loops over every morph
// target for every vertex (51 x 7k per avatar), which costs software WebGL (SwiftShader) two thirds of
// its frame; each ARKit shape moves a few hundred face vertices, which are cheap to add here.
// `targets[k]` is ARKit shape k's {ids, deltas} or null; `touched` is every vertex any shape moves.
function faceTargets(geometry, dictionary, names) {
  const morphs = (geometry.morphAttributes && geometry.morphAttributes.position) || [];
  const touched = new Set();
  const targets = names.map((name) => {
    const attr = dictionary && name in dictionary ? morphs[dictionary[name]] : null;
    if (!attr) return null;
    const ids = [], deltas = [];
    for (let i = 0; i < attr.count; i++) {
      const x = attr.getX(i), y = attr.getY(i), z = attr.getZ(i);
      if (x || y || z) { ids.push(i); deltas.push(x, y, z); touched.add(i); }
    }
    return { ids: Uint32Array.from(ids), deltas: Float32Array.from(deltas) };
  });
  return { targets, touched: Uint32Array.from([...touched]) };
}

// One avatar in the scene: a clone of the loaded glTF with its own skeleton, colours and face.
class Person {
  constructor(gltfScene, placement, colourSet, face) {
    this.root = cloneSkinned(gltfScene);
    this.root.matrixAutoUpdate = false;
    this.root.matrix.fromArray(placement);
    this.mesh = null;
    this.root.traverse((o) => { if (o.isSkinnedMesh) this.mesh = o; });
    const geometry = this.mesh.geometry.clone();
    if (colourSet === 1 && geometry.getAttribute('color_1')) geometry.setAttribute('color', geometry.getAttribute('color_1'));
    geometry.morphAttributes = {}; // the face is added on the CPU (faceTargets)
    this.mesh.geometry = geometry;
    this.mesh.morphTargetInfluences = undefined;
    this.mesh.morphTargetDictionary = undefined;
    this.mesh.material = flatLitMaterial();
    this.mesh.frustumCulled = false; // the bones move it; its rest bounds do not follow
    this.bones = this.mesh.skeleton.bones;
    this.pose = personPose(new Float32Array(FLOATS_PER_PERSON), this.bones.length);
    this.rest = this.bones.map((b) => b.position.clone());
    this.face = face;
    this.positions = geometry.getAttribute('position');
    this.restPositions = this.positions.array.slice();
    this.faceMoved = false;
  }

  apply(pose) {
    for (let j = 0; j < this.bones.length; j++) this.bones[j].quaternion.copy(pose.quats[j]);
    this.bones[0].position.copy(this.rest[0]).add(pose.transl);
    this.applyFace(pose.face);
  }

  applyFace(weights) {
    const { targets, touched } = this.face;
    const pos = this.positions.array, rest = this.restPositions;
    const active = targets.some((t, k) => t && weights[k] > 0);
    if (!active && !this.faceMoved) return;
    for (let n = 0; n < touched.length; n++) {
      const i = touched[n] * 3;
      pos[i] = rest[i]; pos[i + 1] = rest[i + 1]; pos[i + 2] = rest[i + 2];
    }
    for (let k = 0; k < targets.length; k++) {
      const t = targets[k];
      const w = Math.min(Math.max(weights[k], 0), 1);
      if (!t || !w) continue;
      for (let n = 0; n < t.ids.length; n++) {
        const i = t.ids[n] * 3, d = n * 3;
        pos[i] += w * t.deltas[d]; pos[i + 1] += w * t.deltas[d + 1]; pos[i + 2] += w * t.deltas[d + 2];
      }
    }
    this.positions.needsUpdate = true;
    this.faceMoved = active;
  }
}

export class DyadScene {
  // canvas: where to draw; layout: the answer's `scene` (renderer/scene.py as_json);
  // audioClock(): the audio sample being heard now, or null (app.js, from the audio receiver).
  constructor(canvas, layout, audioClock) {
    this.canvas = canvas;
    this.layout = layout;
    this.audioClock = audioClock;
    this.poses = [];          // [{audioSample (unwrapped), captured, index, people: [pose, pose]}]
    this.drawn = [];          // the last 10 s of animation frames that drew a pose: {at, captured, avMs}
    this.lastDrawn = null;
    this.poseTimes = [];      // when each of the server's poses was first drawn (last 2 s)
    this.lastCounted = null;  // the audio sample of the last pose counted as drawn
    this.records = null;      // while profiling (record()): {index, received, drawn} per pose, page ms
    this.fixed = null;        // a pose held still (tests compare it with the server's render)
    this.received = 0;
    this.bad = 0;
    this.late = 0;            // animation frames with no pose yet for the sound heard
    this.unwrap = null;       // the last audio sample seen, to unwrap the 32-bit counter
  }

  async load(url) {
    const { size } = this.layout;
    // no multisampling: in software WebGL (SwiftShader) it costs more than the rest of the frame
    const renderer = new THREE.WebGLRenderer({ canvas: this.canvas, antialias: false, preserveDrawingBuffer: true });
    renderer.setPixelRatio(1);
    renderer.setSize(size[0], size[1], false);
    renderer.outputColorSpace = THREE.LinearSRGBColorSpace; // the shader encodes, as the server's does
    this.renderer = renderer;
    const gltf = await new GLTFLoader().loadAsync(url);
    const scene = new THREE.Scene();
    scene.background = BACKGROUND;
    let loaded = null;
    gltf.scene.traverse((o) => { if (o.isSkinnedMesh) loaded = o; });
    const face = faceTargets(loaded.geometry, loaded.morphTargetDictionary, this.layout.face_names || []);
    this.people = [
      new Person(gltf.scene, this.layout.speaker, 0, face), new Person(gltf.scene, this.layout.listener, 1, face),
    ];
    for (const p of this.people) scene.add(p.root);
    this.scene = scene;
    this.setFraming('body');
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.target.copy(this.target);
    this.controls.update();
    this.running = true;
    renderer.setAnimationLoop(() => this.frame());
    return this;
  }

  // "body": one camera on both (the mouse orbits it); "faces" (data with no body, e.g. REACT): one
  // camera per person, each drawing only its person in its half, as the server's renderer does.
  setFraming(framing) {
    const views = this.layout.views[framing] || this.layout.views.body;
    const body = this.layout.views.body[0];
    const [w, h] = this.layout.size;
    if (!this.camera) this.camera = new THREE.PerspectiveCamera(this.layout.yfov_deg, w / h, body.near, this.layout.far);
    new THREE.Matrix4().fromArray(body.camera).decompose(this.camera.position, this.camera.quaternion, this.camera.scale);
    this.camera.updateMatrixWorld();
    // the orbit centre: where the view axis meets the plane between the two people (z = 0)
    const forward = new THREE.Vector3(0, 0, -1).applyQuaternion(this.camera.quaternion);
    const t = forward.z < -1e-6 ? -this.camera.position.z / forward.z : 2.0;
    this.target = this.camera.position.clone().addScaledVector(forward, t);
    this.faceViews = views.length > 1 ? views.map((v) => {
      const [, , vw, vh] = v.viewport;
      const cam = new THREE.PerspectiveCamera(this.layout.yfov_deg, vw / vh, v.near, this.layout.far);
      new THREE.Matrix4().fromArray(v.camera).decompose(cam.position, cam.quaternion, cam.scale);
      cam.updateMatrixWorld();
      return { viewport: v.viewport, camera: cam };
    }) : null;
    this.framing = framing;
  }

  draw() {
    const r = this.renderer;
    if (!this.faceViews) {
      this.controls.enabled = true;
      this.controls.update();
      r.render(this.scene, this.camera);
      return;
    }
    this.controls.enabled = false; // two fixed cameras
    const [w, h] = this.layout.size;
    r.setScissorTest(true);
    this.faceViews.forEach((v, k) => {
      this.people.forEach((p, j) => { p.root.visible = j === k; });
      r.setViewport(...v.viewport);
      r.setScissor(...v.viewport);
      r.render(this.scene, v.camera);
    });
    this.people.forEach((p) => { p.root.visible = true; });
    r.setScissor(w / 2 - 1, 0, 2, h); // the line between the halves (renderer/offscreen.py DIVIDER_RGB)
    r.setClearColor(DIVIDER, 1);
    r.clear(true, false, false);
    r.setClearColor(0x000000, 0);
    r.setScissorTest(false);
    r.setViewport(0, 0, w, h);
  }

  // A data-channel message.
  push(buffer) {
    let packet;
    try {
      packet = parsePosePacket(buffer);
    } catch (e) {
      this.bad += 1;
      return;
    }
    this.received += 1;
    // while profiling (record(), take()): when it arrived and when it was first drawn, page clock (ms)
    const rec = this.records ? { index: packet.index, received: performance.timeOrigin + performance.now(), drawn: null } : null;
    if (rec) {
      this.records.push(rec);
      if (this.records.length > EXPORT_LIMIT) this.records.shift();
    }
    const joints = this.people ? this.people[0].bones.length : 52;
    let sample = packet.audioSample;
    if (this.unwrap !== null) sample = this.unwrap + ((mod32(sample - mod32(this.unwrap)) + 2147483648) % 4294967296 - 2147483648);
    this.unwrap = sample;
    const entry = {
      audioSample: sample, captured: packet.captured, index: packet.index, framing: packet.framing, rec,
      people: packet.people.map((f) => personPose(f, joints)),
    };
    // unordered delivery: keep the list sorted by content time; drop a duplicate
    let i = this.poses.length;
    while (i > 0 && this.poses[i - 1].audioSample > sample) i--;
    if (i > 0 && this.poses[i - 1].audioSample === sample) return;
    this.poses.splice(i, 0, entry);
    if (this.poses.length > KEPT_POSES) this.poses.shift();
  }

  // The pose of the instant `heard` (an audio sample), interpolated; null when none is near.
  poseAt(heard) {
    const poses = this.poses;
    if (!poses.length) return null;
    let i = poses.length - 1;
    while (i > 0 && poses[i].audioSample > heard) i--;
    const a = poses[i], b = poses[Math.min(i + 1, poses.length - 1)];
    if (heard >= poses[poses.length - 1].audioSample) return { pose: poses[poses.length - 1], t: 0, next: null, late: heard > b.audioSample };
    if (heard <= a.audioSample || a === b) return { pose: a, t: 0, next: null, late: false };
    return { pose: a, next: b, t: (heard - a.audioSample) / (b.audioSample - a.audioSample), late: false };
  }

  frame() {
    if (!this.running) return;
    if (this.fixed) {
      this.people.forEach((p, k) => p.apply(this.fixed.people[k]));
    } else {
      const heardNow = this.audioClock();
      const newest = this.poses.length ? this.poses[this.poses.length - 1] : null;
      if (newest) {
        // before the audio clock is known, show the newest pose
        const heard = heardNow === null ? newest.audioSample : this.unwrapNear(heardNow, newest.audioSample);
        const at = this.poseAt(heard);
        if (at) {
          if (at.late) this.late += 1;
          if (at.pose.framing !== this.framing) this.setFramingKeepingOrbit(at.pose.framing);
          this.people.forEach((p, k) => {
            const pose = at.next ? blendPose(at.pose.people[k], at.next.people[k], at.t, p.pose) : at.pose.people[k];
            p.apply(pose);
          });
          const drawnSample = at.next ? at.pose.audioSample + at.t * (at.next.audioSample - at.pose.audioSample) : at.pose.audioSample;
          const captured = at.next ? at.pose.captured + at.t * (at.next.captured - at.pose.captured) : at.pose.captured;
          // at: performance.now() of the drawing; captured: the server-clock end of the audio of the
          // pose drawn; avMs: that pose's content time minus the sound heard now (+: picture ahead)
          const avMs = heardNow === null ? null : ((drawnSample - heard) * 1000) / AUDIO_RATE;
          this.lastDrawn = { at: performance.now(), captured, avMs };
          this.drawn.push(this.lastDrawn);
          // the server's poses in this picture (the two blended, or the one held), each counted once
          for (const p of at.next && at.t > 0 ? [at.pose, at.next] : [at.pose]) {
            if (this.lastCounted !== null && p.audioSample <= this.lastCounted) continue;
            this.lastCounted = p.audioSample;
            this.poseTimes.push(this.lastDrawn.at);
            if (p.rec && p.rec.drawn === null) p.rec.drawn = performance.timeOrigin + this.lastDrawn.at;
          }
          while (this.lastDrawn.at - this.poseTimes[0] > DRAWN_WINDOW_MS) this.poseTimes.shift();
          while (this.drawn.length && this.lastDrawn.at - this.drawn[0].at > LOG_WINDOW_MS) this.drawn.shift();
        }
      }
    }
    this.draw();
  }

  // the 32-bit audio clock, unwrapped next to the poses' unwrapped samples
  unwrapNear(sample32, reference) {
    const d = (mod32(sample32 - mod32(reference)) + 2147483648) % 4294967296 - 2147483648;
    return reference + d;
  }

  setFramingKeepingOrbit(framing) {
    this.setFraming(framing);
    if (this.controls) { this.controls.target.copy(this.target); this.controls.update(); }
  }

  // The server's poses drawn per second over the last 2 s: each pose that showed in a picture, alone
  // or blended with its neighbour (animationFps() counts the pictures).
  drawnFps() {
    const t = this.poseTimes;
    if (t.length < 2 || performance.now() - t[t.length - 1] > DRAWN_WINDOW_MS) return null;
    return ((t.length - 1) * 1000) / (t[t.length - 1] - t[0]);
  }

  animationFps() {
    const d = this.drawn;
    const last = d.length ? d[d.length - 1].at : 0;
    const recent = d.filter((x) => last - x.at <= DRAWN_WINDOW_MS);
    return recent.length < 2 ? null : ((recent.length - 1) * 1000) / (last - recent[0].at);
  }

  // Profiling: keep a record of every pose from now on.
  record() {
    this.records = [];
  }

  // The records kept since record(), each handed out once: those drawn, and those that never will
  // be (more than 2 s old).
  take() {
    if (!this.records) return [];
    const old = performance.timeOrigin + performance.now() - 2000;
    const out = this.records.filter((r) => r.drawn !== null || r.received < old);
    this.records = this.records.filter((r) => r.drawn === null && r.received >= old);
    return out;
  }

  // Hold one pose packet still (a test's fixed pose); null resumes the live poses.
  hold(buffer) {
    if (buffer === null) { this.fixed = null; return; }
    const packet = parsePosePacket(buffer);
    const joints = this.people[0].bones.length;
    this.fixed = { people: packet.people.map((f) => personPose(f, joints)) };
    this.setFramingKeepingOrbit(packet.framing);
  }

  // The picture as drawn, for tests: a PNG data URL of the canvas after one more frame.
  snapshot() {
    this.frame();
    return this.canvas.toDataURL('image/png');
  }

  stop() {
    this.running = false;
    if (this.renderer) this.renderer.setAnimationLoop(null);
  }
}

// Whether this browser can draw with WebGL at all (else the page asks for the server's video).
export function webglProblem() {
  try {
    const c = document.createElement('canvas');
    return c.getContext('webgl2') || c.getContext('webgl') ? null : 'this browser has no WebGL';
  } catch (e) {
    return `WebGL failed: ${e.message || e}`;
  }
}
