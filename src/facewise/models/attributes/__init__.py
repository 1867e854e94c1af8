"""models/attributes"""
