"""Renders a glTF scene with Blender Cycles (CPU) the way the `render`
plugin renders it, and writes the image as a linear PFM.

    blender -b --factory-startup -noaudio --python scripts/cycles/render.py -- \
        SCENE.gltf OUT.pfm --width 64 --height 64 --spp 1024 --bounces 6 [--seed 1] [--threads 0]

How the settings map (so that the two renderers solve the same problem):
- the scene comes in through Blender's own glTF importer; its lights
  (candela and lux turned into watts at 683 lm/W) get their energy × 683
  back, so that 1 cd, 1 lux and emission strength 1 mean the same in both,
  with no radius (hard shadows, as glTF's punctual lights); spot cones
  fade by Blender's smoothstep blend, not glTF's curve
  (see plugins/render/README.md);
- materials are rebuilt as glTF's BRDF (`as_gltf_brdf`), not Principled,
  with transmission as GGX refraction under the Fresnel-weighted coat
  and a volume's absorption coefficients as a Volume Absorption shader;
- the camera is the scene's first camera, the world a black background;
- Cycles counts bounces after the first hit with direct light included
  (its 0 is direct lighting), the plugin counts every scattering (its 0
  is emission seen directly): pass the plugin's `max_bounces` − 1;
- pixel filter: a 1-pixel box, as the plugin jitters uniformly in the pixel;
- view transform Standard, look None, exposure 0, gamma 1: the PFM holds
  linear radiance before any tone mapping;
- max bounces = diffuse = glossy = transmission = `--bounces`; no clamping,
  no caustics filter, no denoising, no adaptive sampling;
- the time printed (`CYCLES render_s=…`) covers `bpy.ops.render.render`
  only (scene synchronisation and BVH build included, as the plugin's own
  time includes its upload and BVH).
"""

import argparse
import json
import math
import struct
import sys
import time

import bpy
import numpy

# Blender 3.4's glTF importer still says `numpy.bool`, which numpy ≥ 1.24
# removed; a newer numpy found on the Python path would break the import.
if "bool" not in numpy.__dict__:
    numpy.bool = bool


def parse():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="render.py")
    p.add_argument("scene")
    p.add_argument("out")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--spp", type=int, default=1024)
    p.add_argument("--bounces", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--environment", help="an equirectangular .hdr lighting the scene")
    p.add_argument("--strength", type=float, default=1.0, help="the environment image's strength")
    p.add_argument("--rotation-deg", type=float, default=0.0,
                   help="the plugin's rotation_deg: turns the image about the up axis")
    return p.parse_args(argv)


def input_of(node, name):
    """The socket `name` of `node`, with what links into it (if anything)."""
    socket = node.inputs[name]
    link = socket.links[0].from_socket if socket.is_linked else None
    return socket, link


def feed(tree, target, value, link):
    if link is not None:
        tree.links.new(link, target)
    else:
        target.default_value = value


def material_extensions(path):
    """What the plugin reads from each material's extensions, by Blender
    material name (the glTF name, or the importer's `Material_<index>`
    for unnamed materials), read from the glTF itself: Blender 3.4's
    importer ignores `KHR_materials_specular` and maps transmission and
    volume its own way. Per material: specular factor, transmission
    factor, ior, and the volume's absorption coefficients (or None for
    a thin wall)."""
    raw = open(path, "rb").read()
    if raw[:4] == b"glTF":
        length = struct.unpack_from("<I", raw, 12)[0]
        raw = raw[20:20 + length]
    doc = json.loads(raw)
    found = {}
    for i, m in enumerate(doc.get("materials", [])):
        ext = m.get("extensions", {})
        volume = ext.get("KHR_materials_volume")
        absorption = None
        if volume is not None and volume.get("thicknessFactor", 0.0) > 0.0:
            distance = volume.get("attenuationDistance", math.inf)
            color = volume.get("attenuationColor", [1.0, 1.0, 1.0])
            absorption = [-math.log(max(c, 1e-30)) / distance for c in color]
        found[m.get("name", f"Material_{i}")] = {
            "specular": ext.get("KHR_materials_specular", {}).get("specularFactor", 1.0),
            "transmission": ext.get("KHR_materials_transmission", {}).get("transmissionFactor", 0.0),
            "ior": ext.get("KHR_materials_ior", {}).get("ior", 1.5),
            "absorption": absorption,
        }
    return found


PLAIN = {"specular": 1.0, "transmission": 0.0, "ior": 1.5, "absorption": None}


def as_gltf_brdf(material, ext):
    """Rebuilds a material made by the glTF importer (a Principled BSDF) as
    glTF's own BRDF (the spec's appendix B), which the plugin implements
(metals with multiple-scattering GGX, as the plugin's):
    mix(mix(Lambert base, GGX refraction, transmission), GGX,
    Fresnel(ior)) for dielectrics, GGX tinted by the base color for
    metals, blended by metallic; emission added; a volume's absorption as
    a Volume Absorption shader. The Fresnel weight is scaled by the
    specular factor (0 leaves Lambert). Principled's Disney diffuse
    (retro-reflection at roughness 1) would otherwise make rough surfaces
    up to ~40 % brighter at grazing angles."""
    if not material.use_nodes:
        return
    tree = material.node_tree
    principled = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    output = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"), None)
    if principled is None or output is None:
        return
    base, base_link = input_of(principled, "Base Color")
    metal, metal_link = input_of(principled, "Metallic")
    rough, rough_link = input_of(principled, "Roughness")
    emit, emit_link = input_of(principled, "Emission")
    _, normal_link = input_of(principled, "Normal")
    strength, _ = input_of(principled, "Emission Strength")
    n = tree.nodes.new
    diffuse = n("ShaderNodeBsdfDiffuse")
    feed(tree, diffuse.inputs["Color"], base.default_value, base_link)
    diffuse.inputs["Roughness"].default_value = 0.0
    base_bsdf = diffuse.outputs["BSDF"]
    if ext["transmission"] > 0.0:
        # Thin walls (no volume) have no Cycles counterpart; the plugin's
        # refraction is what a volume's boundary does.
        refraction = n("ShaderNodeBsdfRefraction")
        refraction.distribution = "GGX"
        feed(tree, refraction.inputs["Color"], base.default_value, base_link)
        feed(tree, refraction.inputs["Roughness"], rough.default_value, rough_link)
        refraction.inputs["IOR"].default_value = ext["ior"]
        mixed = n("ShaderNodeMixShader")
        mixed.inputs["Fac"].default_value = ext["transmission"]
        tree.links.new(diffuse.outputs["BSDF"], mixed.inputs[1])
        tree.links.new(refraction.outputs["BSDF"], mixed.inputs[2])
        base_bsdf = mixed.outputs["Shader"]
    if ext["absorption"] is not None:
        # Cycles absorbs (1 − color) × density per unit length.
        density = max(ext["absorption"])
        absorb = n("ShaderNodeVolumeAbsorption")
        absorb.inputs["Density"].default_value = density
        absorb.inputs["Color"].default_value = (
            *[1.0 - a / density if density > 0 else 1.0 for a in ext["absorption"]], 1.0)
        tree.links.new(absorb.outputs["Volume"], output.inputs["Volume"])
    elif output.inputs["Volume"].is_linked:
        tree.links.remove(output.inputs["Volume"].links[0])
    coat = n("ShaderNodeBsdfGlossy")
    coat.distribution = "GGX"
    coat.inputs["Color"].default_value = (1, 1, 1, 1)
    feed(tree, coat.inputs["Roughness"], rough.default_value, rough_link)
    fresnel = n("ShaderNodeFresnel")
    fresnel.inputs["IOR"].default_value = ext["ior"]
    scaled = n("ShaderNodeMath")
    scaled.operation = "MULTIPLY"
    tree.links.new(fresnel.outputs["Fac"], scaled.inputs[0])
    scaled.inputs[1].default_value = ext["specular"]
    dielectric = n("ShaderNodeMixShader")
    tree.links.new(scaled.outputs["Value"], dielectric.inputs["Fac"])
    tree.links.new(base_bsdf, dielectric.inputs[1])
    tree.links.new(coat.outputs["BSDF"], dielectric.inputs[2])
    metal_bsdf = n("ShaderNodeBsdfGlossy")
    # Metals keep the light GGX loses between microfacets in both
    # renderers (the plugin's multiple-scattering lobe).
    metal_bsdf.distribution = "MULTI_GGX"
    feed(tree, metal_bsdf.inputs["Color"], base.default_value, base_link)
    feed(tree, metal_bsdf.inputs["Roughness"], rough.default_value, rough_link)
    if normal_link is not None:
        # A normal map bends every lobe alike.
        for bsdf in [diffuse, coat, metal_bsdf] + ([refraction] if ext["transmission"] > 0.0 else []):
            tree.links.new(normal_link, bsdf.inputs["Normal"])
    surface = n("ShaderNodeMixShader")
    feed(tree, surface.inputs["Fac"], metal.default_value, metal_link)
    tree.links.new(dielectric.outputs["Shader"], surface.inputs[1])
    tree.links.new(metal_bsdf.outputs["BSDF"], surface.inputs[2])
    emission = n("ShaderNodeEmission")
    feed(tree, emission.inputs["Color"], emit.default_value, emit_link)
    emission.inputs["Strength"].default_value = strength.default_value
    total = n("ShaderNodeAddShader")
    tree.links.new(surface.outputs["Shader"], total.inputs[0])
    tree.links.new(emission.outputs["Emission"], total.inputs[1])
    tree.links.new(total.outputs["Shader"], output.inputs["Surface"])


def main():
    a = parse()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=a.scene)
    scene = bpy.context.scene
    for light in bpy.data.lights:
        # glTF lights are points; Blender's default radius (0.25 m) and
        # sun angle would soften their shadows.
        light.shadow_soft_size = 0.0
        # The importer turned candela and lux into watts at 683 lm/W;
        # Cycles renders a point of P W as P / 4π per steradian and a sun
        # of S as S per m², in the units where emission strength 1 is
        # radiance 1, which is the plugin's scale for cd, lux and cd/m².
        light.energy *= 683.0
        if light.type == "SUN":
            light.angle = 0.0
    extensions = material_extensions(a.scene)
    for material in bpy.data.materials:
        as_gltf_brdf(material, extensions.get(material.name, PLAIN))
    cameras = [o for o in scene.objects if o.type == "CAMERA"]
    if not cameras:
        sys.exit(f"{a.scene}: no camera")
    scene.camera = cameras[0]

    world = bpy.data.worlds.new("black")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (0, 0, 0, 1)
    if a.environment:
        # Blender's equirectangular mapping is the plugin's; its Mapping
        # rotation about Z turns the other way round from rotation_deg.
        nodes, links = world.node_tree.nodes, world.node_tree.links
        texture = nodes.new("ShaderNodeTexEnvironment")
        texture.image = bpy.data.images.load(a.environment)
        texture.interpolation = "Linear"
        mapping = nodes.new("ShaderNodeMapping")
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(-a.rotation_deg))
        coords = nodes.new("ShaderNodeTexCoord")
        links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], texture.inputs["Vector"])
        links.new(texture.outputs["Color"], background.inputs["Color"])
        background.inputs["Strength"].default_value = a.strength
    scene.world = world

    scene.render.engine = "CYCLES"
    c = scene.cycles
    c.device = "CPU"
    c.samples = a.spp
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.seed = a.seed
    c.max_bounces = a.bounces
    c.diffuse_bounces = a.bounces
    c.glossy_bounces = a.bounces
    c.transmission_bounces = a.bounces
    c.transparent_max_bounces = a.bounces
    c.volume_bounces = 0
    c.sample_clamp_direct = 0.0
    c.sample_clamp_indirect = 0.0
    c.blur_glossy = 0.0
    c.caustics_reflective = True
    c.caustics_refractive = True
    c.pixel_filter_type = "BOX"
    c.filter_width = 1.0
    scene.render.threads_mode = "FIXED" if a.threads > 0 else "AUTO"
    if a.threads > 0:
        scene.render.threads = a.threads

    scene.render.resolution_x = a.width
    scene.render.resolution_y = a.height
    scene.render.resolution_percentage = 100
    scene.render.use_persistent_data = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    exr = a.out + ".exr"
    scene.render.filepath = exr

    started = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    seconds = time.perf_counter() - started

    image = bpy.data.images.load(exr)
    w, h = image.size
    px = list(image.pixels)  # RGBA floats, bottom row first (as PFM)
    with open(a.out, "wb") as f:
        f.write(f"PF\n{w} {h}\n-1.0\n".encode())
        for i in range(w * h):
            f.write(struct.pack("<3f", px[4 * i], px[4 * i + 1], px[4 * i + 2]))
    print(f"CYCLES render_s={seconds:.3f} width={w} height={h} spp={a.spp}", flush=True)


main()
