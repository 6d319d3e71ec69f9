#version 330 core
// dyadic's replacement for pyrender's flat.vert: Gouraud three-point lighting per vertex.
// pyrender's per-pixel PBR shader costs ~45 ms per 640x480 frame on llvmpipe; lighting the
// ~7k vertices per avatar here (on the GPU, or in llvmpipe's SIMD vertex stage) costs well under
// a millisecond and looks the same on smooth, untextured surfaces.
layout(location = 0) in vec3 position;
#ifdef NORMAL_LOC
layout(location = NORMAL_LOC) in vec3 normal;
#endif
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;   // linear albedo, alpha
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;
uniform vec3 cam_pos;

out vec4 lit_color;

// Directions towards the lights (world frame, y up, camera on +z) and linear colour x intensity:
// a warm key from front-left-above, a cool fill from the right, a white rim from behind.
const vec3 KEY_DIR = vec3(-1.0, 1.3, 1.6);
const vec3 KEY_COL = vec3(0.78, 0.74, 0.68);
const vec3 FILL_DIR = vec3(1.4, 0.4, 1.2);
const vec3 FILL_COL = vec3(0.26, 0.29, 0.34);
const vec3 BACK_DIR = vec3(0.3, 1.2, -1.6);
const vec3 BACK_COL = vec3(0.45, 0.45, 0.45);
const vec3 AMBIENT_SKY = vec3(0.30, 0.31, 0.34);
const vec3 AMBIENT_GROUND = vec3(0.17, 0.16, 0.15);

float wrapped(vec3 n, vec3 dir) {
    // half-wrapped Lambert: shadows stay soft, as under studio light
    return max((dot(n, normalize(dir)) + 0.3) / 1.3, 0.0);
}

void main()
{
    mat4 model = M * inst_m;   // rigid placement: its rotation also transforms normals
    vec4 world = model * vec4(position, 1.0);
    gl_Position = P * V * world;

    vec4 albedo = vec4(1.0);
#ifdef COLOR_0_LOC
    albedo = color_0;
#endif
    vec3 n = vec3(0.0, 0.0, 1.0);
#ifdef NORMAL_LOC
    n = normalize(mat3(model) * normal);
#endif
    float sky = n.y * 0.5 + 0.5;
    vec3 light = wrapped(n, KEY_DIR) * KEY_COL + wrapped(n, FILL_DIR) * FILL_COL
               + wrapped(n, BACK_DIR) * BACK_COL
               + AMBIENT_SKY * sky + AMBIENT_GROUND * (1.0 - sky);
    float rim = pow(clamp(1.0 - dot(n, normalize(cam_pos - world.xyz)), 0.0, 1.0), 3.0) * 0.12;
    vec3 linear = albedo.rgb * light + rim;
    lit_color = vec4(sqrt(clamp(linear, 0.0, 1.0)), albedo.a);   // ~gamma 2.0 encode
}
