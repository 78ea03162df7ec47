"""Builds the `studio` test scene in Blender and exports it with Blender's
own glTF exporter, as a creator would make a scene:

    blender -b --factory-startup -noaudio --python scripts/cycles/build_scene.py -- OUT.glb

The scene (Blender Z-up, exported Y-up): a checker-textured floor (an
image texture under a Mapping node, exported as `KHR_texture_transform`);
a back wall with ridges from a normal map (a Normal Map node, exported as
`normalTexture`; no tangents are exported, the plugin derives them from
the texture coordinates) and a vertex-color gradient (`COLOR_0`); a clear
glass ball with a faint blue tint (Principled transmission 1, IOR 1.5, a
`glTF Material Output` thickness and a Volume Absorption node, exported
as `KHR_materials_transmission`, `_volume`); a red plastic cube striped
glossy and rough by a roughness image (exported as
`metallicRoughnessTexture`); a gold ball (metallic); an emissive ceiling
panel (Blender's area lights are not exported, an emissive mesh is how
glTF carries one; `KHR_materials_emissive_strength`); a point light
(`KHR_lights_punctual`); a camera at 3:2.

`scripts/cycles/render.py` renders the exported file with Cycles for the
reference image; `plugins/render/tests/native.rs` compares the plugin
against it.
"""

import math
import sys

import bpy


def out_path():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        sys.exit("usage: blender -b --python build_scene.py -- OUT.glb")
    return argv[0]


def principled(name, color, metallic=0.0, roughness=0.5):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    p = material.node_tree.nodes["Principled BSDF"]
    p.inputs["Base Color"].default_value = (*color, 1.0)
    p.inputs["Metallic"].default_value = metallic
    p.inputs["Roughness"].default_value = roughness
    return material, p


def thickness_group():
    """The node group the exporter reads `KHR_materials_volume`'s
    thickness from."""
    group = bpy.data.node_groups.new("glTF Material Output", "ShaderNodeTree")
    group.inputs.new("NodeSocketFloat", "Thickness")
    return group


def png_image(name, size, pixel, path, data=False):
    """A `size`² image whose texel (x, y) (rows from the bottom, as
    Blender stores them) is `pixel(x, y)` (RGB), saved as PNG at `path`;
    `data` marks it as non-color (normals, roughness)."""
    image = bpy.data.images.new(name, size, size, alpha=False)
    if data:
        image.colorspace_settings.name = "Non-Color"
    pixels = []
    for y in range(size):
        for x in range(size):
            pixels += [*pixel(x, y), 1.0]
    image.pixels = pixels
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    return image


def checker_image(path):
    size, cells = 64, 8

    def pixel(x, y):
        on = ((x * cells // size) + (y * cells // size)) % 2 == 0
        return [0.8, 0.75, 0.6] if on else [0.12, 0.15, 0.22]

    return png_image("checker", size, pixel, path)


def ridges_image(path):
    """A tangent-space normal map of vertical ridges, six per tile, whose
    normals swing up to 27° toward ±x, as glTF stores normals (+y up)."""
    size = 64

    def pixel(x, _):
        slope = 0.5 * math.cos(2 * math.pi * 6 * (x + 0.5) / size)
        length = math.sqrt(slope * slope + 1.0)
        return [0.5 - 0.5 * slope / length, 0.5, 0.5 + 0.5 / length]

    return png_image("ridges", size, pixel, path, data=True)


def stripes_image(path):
    """Roughness for the G channel glTF reads it from: bands of 0.15 and 0.8."""
    size = 32

    def pixel(_, y):
        r = 0.15 if (y * 4 // size) % 2 == 0 else 0.8
        return [r, r, r]

    return png_image("stripes", size, pixel, path, data=True)


def add(obj_op, material, **kw):
    obj_op(**kw)
    obj = bpy.context.active_object
    obj.data.materials.append(material)
    return obj


def main():
    out = out_path()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = 96
    scene.render.resolution_y = 64

    # Floor: a checker image, repeated 3× by a Mapping node.
    floor, p = principled("floor", (1, 1, 1), roughness=0.7)
    nodes, links = floor.node_tree.nodes, floor.node_tree.links
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = checker_image(bpy.app.tempdir + "checker.png")
    tex.interpolation = "Linear"
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (3.0, 3.0, 1.0)
    coords = nodes.new("ShaderNodeTexCoord")
    links.new(coords.outputs["UV"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], p.inputs["Base Color"])
    add(bpy.ops.mesh.primitive_plane_add, floor, size=6.0, location=(0, 0.5, 0))

    # Back wall: ridges from a normal map, and its color from a
    # vertex-color gradient, warm gray (left) to cool gray (right).
    wall, p = principled("wall", (1.0, 1.0, 1.0), roughness=1.0)
    nodes, links = wall.node_tree.nodes, wall.node_tree.links
    bump = nodes.new("ShaderNodeTexImage")
    bump.image = ridges_image(bpy.app.tempdir + "ridges.png")
    bump.interpolation = "Linear"
    normal_map = nodes.new("ShaderNodeNormalMap")
    links.new(bump.outputs["Color"], normal_map.inputs["Color"])
    links.new(normal_map.outputs["Normal"], p.inputs["Normal"])
    tint = nodes.new("ShaderNodeVertexColor")
    tint.layer_name = "Col"
    links.new(tint.outputs["Color"], p.inputs["Base Color"])
    back = add(bpy.ops.mesh.primitive_plane_add, wall, size=6.0, location=(0, 2.0, 3.0))
    back.rotation_euler = (math.radians(90), 0, 0)
    colors = back.data.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
    for i, v in enumerate(back.data.vertices):
        colors.data[i].color = (0.8, 0.65, 0.5, 1.0) if v.co.x < 0 else (0.5, 0.65, 0.8, 1.0)

    glass, p = principled("glass", (1, 1, 1), roughness=0.0)
    p.inputs["Transmission"].default_value = 1.0
    p.inputs["IOR"].default_value = 1.5
    settings = glass.node_tree.nodes.new("ShaderNodeGroup")
    settings.node_tree = thickness_group()
    settings.inputs["Thickness"].default_value = 1.0
    absorb = glass.node_tree.nodes.new("ShaderNodeVolumeAbsorption")
    absorb.inputs["Color"].default_value = (0.8, 0.9, 1.0, 1.0)
    absorb.inputs["Density"].default_value = 1.0
    glass.node_tree.links.new(
        absorb.outputs["Volume"], glass.node_tree.nodes["Material Output"].inputs["Volume"]
    )
    add(bpy.ops.mesh.primitive_uv_sphere_add, glass, radius=0.6, location=(-0.75, -0.2, 0.6),
        segments=48, ring_count=24)
    bpy.ops.object.shade_smooth()

    plastic, p = principled("plastic", (0.7, 0.08, 0.05), roughness=0.3)
    stripes = plastic.node_tree.nodes.new("ShaderNodeTexImage")
    stripes.image = stripes_image(bpy.app.tempdir + "stripes.png")
    stripes.interpolation = "Closest"
    split = plastic.node_tree.nodes.new("ShaderNodeSeparateColor")
    plastic.node_tree.links.new(stripes.outputs["Color"], split.inputs["Color"])
    plastic.node_tree.links.new(split.outputs["Green"], p.inputs["Roughness"])
    cube = add(bpy.ops.mesh.primitive_cube_add, plastic, size=0.8, location=(0.85, 0.5, 0.4))
    cube.rotation_euler = (0, 0, math.radians(30))

    gold, _ = principled("gold", (1.0, 0.77, 0.34), metallic=1.0, roughness=0.25)
    add(bpy.ops.mesh.primitive_uv_sphere_add, gold, radius=0.35, location=(0.45, -0.75, 0.35),
        segments=32, ring_count=16)
    bpy.ops.object.shade_smooth()

    panel, p = principled("panel", (0, 0, 0), roughness=1.0)
    p.inputs["Emission"].default_value = (1.0, 0.95, 0.85, 1.0)
    p.inputs["Emission Strength"].default_value = 12.0
    lamp = add(bpy.ops.mesh.primitive_plane_add, panel, size=1.0, location=(-0.3, 0.3, 2.6))
    lamp.rotation_euler = (math.radians(180), 0, 0)

    light = bpy.data.lights.new("point", "POINT")
    light.energy = 0.3
    light.color = (1.0, 0.9, 0.8)
    point = bpy.data.objects.new("point", light)
    point.location = (1.6, -1.4, 2.0)
    scene.collection.objects.link(point)

    camera = bpy.data.cameras.new("camera")
    camera.sensor_fit = "HORIZONTAL"
    camera.angle = math.radians(50)
    eye = bpy.data.objects.new("camera", camera)
    eye.location = (0.0, -4.6, 1.7)
    eye.rotation_euler = (math.radians(78), 0, 0)
    scene.collection.objects.link(eye)
    scene.camera = eye

    bpy.ops.export_scene.gltf(
        filepath=out,
        export_format="GLB",
        export_cameras=True,
        export_lights=True,
        export_apply=True,
        export_yup=True,
    )
    print(f"wrote {out}")


main()
