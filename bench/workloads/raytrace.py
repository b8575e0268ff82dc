"""A small ray tracer: spheres, a plane, point lights, shadows and reflections.

Every vector operation returns a new Vec instance, so object churn is high.
"""
import math


class Vec:
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x = x
        self.y = y
        self.z = z

    def __add__(self, o):
        return Vec(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o):
        return Vec(self.x - o.x, self.y - o.y, self.z - o.z)

    def scale(self, k):
        return Vec(self.x * k, self.y * k, self.z * k)

    def dot(self, o):
        return self.x * o.x + self.y * o.y + self.z * o.z

    def norm(self):
        return self.scale(1.0 / math.sqrt(self.dot(self)))

    def mul(self, o):
        return Vec(self.x * o.x, self.y * o.y, self.z * o.z)


class Ray:
    def __init__(self, origin, direction):
        self.origin = origin
        self.direction = direction.norm()

    def at(self, t):
        return self.origin + self.direction.scale(t)


class Hit:
    def __init__(self, t, point, normal, material):
        self.t = t
        self.point = point
        self.normal = normal
        self.material = material


class Material:
    def __init__(self, color, diffuse, reflect):
        self.color = color
        self.diffuse = diffuse
        self.reflect = reflect


class Sphere:
    def __init__(self, centre, radius, material):
        self.centre = centre
        self.radius = radius
        self.material = material

    def intersect(self, ray):
        oc = ray.origin - self.centre
        b = oc.dot(ray.direction)
        c = oc.dot(oc) - self.radius * self.radius
        disc = b * b - c
        if disc < 0:
            return None
        root = math.sqrt(disc)
        t = -b - root
        if t < 1e-6:
            t = -b + root
            if t < 1e-6:
                return None
        p = ray.at(t)
        return Hit(t, p, (p - self.centre).norm(), self.material)


class Plane:
    def __init__(self, point, normal, material):
        self.point = point
        self.normal = normal.norm()
        self.material = material

    def intersect(self, ray):
        denom = self.normal.dot(ray.direction)
        if abs(denom) < 1e-9:
            return None
        t = (self.point - ray.origin).dot(self.normal) / denom
        if t < 1e-6:
            return None
        return Hit(t, ray.at(t), self.normal, self.material)


class Scene:
    def __init__(self):
        red = Material(Vec(0.9, 0.2, 0.2), 0.8, 0.2)
        blue = Material(Vec(0.2, 0.3, 0.9), 0.7, 0.3)
        grey = Material(Vec(0.6, 0.6, 0.6), 0.9, 0.1)
        mirror = Material(Vec(0.9, 0.9, 0.9), 0.1, 0.9)
        self.objects = [
            Sphere(Vec(0, 1, 5), 1.0, red),
            Sphere(Vec(-2.2, 0.8, 6), 0.8, blue),
            Sphere(Vec(2.0, 1.2, 6.5), 1.2, mirror),
            Plane(Vec(0, 0, 0), Vec(0, 1, 0), grey),
        ]
        self.lights = [Vec(-5, 8, -2), Vec(6, 6, 1)]

    def nearest(self, ray):
        best = None
        for obj in self.objects:
            hit = obj.intersect(ray)
            if hit is not None and (best is None or hit.t < best.t):
                best = hit
        return best

    def shade(self, ray, depth):
        hit = self.nearest(ray)
        if hit is None:
            return Vec(0.1, 0.15, 0.25)
        colour = hit.material.color.scale(0.05)
        for light in self.lights:
            to_light = light - hit.point
            shadow = self.nearest(Ray(hit.point, to_light))
            if shadow is not None and shadow.t * shadow.t < to_light.dot(to_light):
                continue
            lam = max(0.0, hit.normal.dot(to_light.norm()))
            colour = colour + hit.material.color.scale(lam * hit.material.diffuse)
        if depth < 3 and hit.material.reflect > 0:
            d = ray.direction
            refl = d - hit.normal.scale(2 * d.dot(hit.normal))
            colour = colour + self.shade(Ray(hit.point, refl), depth + 1).scale(hit.material.reflect)
        return colour


def render(width, height):
    scene = Scene()
    eye = Vec(0, 1.5, -3)
    rows = []
    for j in range(height):
        row = []
        for i in range(width):
            x = (i - width / 2) / width
            y = (height / 2 - j) / height
            c = scene.shade(Ray(eye, Vec(x, y + 0.1, 1)), 0)
            row.append((min(255, int(c.x * 255)), min(255, int(c.y * 255)), min(255, int(c.z * 255))))
        rows.append(row)
    return rows


if __name__ == "__main__":
    img = render(400, 300)
    print("mean red", sum(p[0] for r in img for p in r) // (400 * 300))
