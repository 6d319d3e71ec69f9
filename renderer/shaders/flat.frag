#version 330 core
// dyadic's replacement for pyrender's flat.frag: the colour lit per vertex, interpolated.
struct Material {
    vec3 emissive_factor;
#ifdef USE_METALLIC_MATERIAL
    vec4 base_color_factor;
    float metallic_factor;
    float roughness_factor;
#endif
};
uniform Material material;

in vec4 lit_color;
out vec4 frag_color;

void main()
{
    vec4 c = lit_color;
#ifdef USE_METALLIC_MATERIAL
    c *= material.base_color_factor;   // the ghost's translucency
#endif
    frag_color = clamp(c, 0.0, 1.0);
}
